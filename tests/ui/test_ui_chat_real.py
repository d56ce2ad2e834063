"""The chat page over the real assistant: seeds/ indexed in lexical mode, extractive answers.

One server for the module (a temp copy of seeds/ in a temp index); each test opens its own browser context.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from ui_browser import copy_seeds, free_port, lexical_settings, serve_app

from rag import build_assistant

pytestmark = [pytest.mark.browser, pytest.mark.slow]

QUESTION = "Quelle est la valorisation d'OpenAI ?"


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("chat")


@pytest.fixture(scope="module")
def assistant(seeds_dir: Path, workspace: Path):
    settings = lexical_settings(
        workspace,
        # Chosen in the page to check errors: an OpenAI-compatible server that is not there.
        **{"llm.base_url": f"http://127.0.0.1:{free_port()}/v1", "llm.timeout_s": 5},
    )
    return build_assistant([copy_seeds(seeds_dir, workspace)], settings)


@pytest.fixture(scope="module")
def url(assistant, browser) -> str:
    with serve_app(assistant) as address:
        yield address


def test_answer_cites_its_source_and_highlights_the_span(url, chat_page_factory):
    chat = chat_page_factory(url)
    banner = chat.page.locator("#mode-banner").inner_text()
    assert "Offline mode" in banner and "keyword search" in banner and "no language model" in banner

    answer = chat.ask(QUESTION)
    assert "80 milliards" in answer.locator(".answer-text").inner_text()
    chip = answer.locator("a.cite").first
    target = chip.get_attribute("href")
    assert re.fullmatch(r"#src-1-\d+", target)
    card = chat.page.locator(target)
    assert card.is_visible()
    assert "openai-altman.fr.txt" in card.locator(".src-name").inner_text()
    marks = " ".join(card.locator(".src-excerpt mark, .src-text > mark").all_inner_texts())
    assert "80 milliards" in marks
    assert "1 source cited" in answer.locator(".status").inner_text()
    # The one source is "1" on its chip and its card (the passage cited is not the first retrieved: it
    # showed "3" next to "1 source cited").
    assert target != "#src-1-1"
    assert chip.inner_text() == "1" and card.locator(".src-num").inner_text() == "1"
    assert chat.external_requests == []  # no fonts or scripts from a CDN
    chat.screenshot("chat.png")
    chip.click()
    assert chat.page.evaluate("() => location.hash") == target


def test_follow_up_then_new_conversation(url, chat_page_factory):
    chat = chat_page_factory(url)
    chat.ask(QUESTION)
    follow_up = chat.ask("Et qui est son principal investisseur ?")
    assert chat.questions() == [QUESTION, "Et qui est son principal investisseur ?"]
    assert follow_up.locator(".answer-text").inner_text().strip()
    assert chat.answers().count() == 2

    chat.page.click("#new-conversation")
    chat.page.wait_for_function("() => !document.querySelector('#chat .question')")
    assert chat.page.locator("#chat").get_by_text("Sam Altman possède-t-il").is_visible()  # examples are back
    chat.ask("Qui est Sam Altman ?")
    assert chat.questions() == ["Qui est Sam Altman ?"]


def test_abstention_is_shown_as_a_badge(url, chat_page_factory):
    chat = chat_page_factory(url)
    answer = chat.ask("Quelle est la capitale du Pérou ?")
    assert "Not in the documents" in answer.locator(".badge-abstain").inner_text()
    assert answer.locator("a.cite").count() == 0


def test_two_sessions_keep_separate_histories(url, chat_page_factory):
    alice = chat_page_factory(url)
    bob = chat_page_factory(url)
    # Both ask at the same time; each sees only their own conversation.
    alice_before, bob_before = alice.submit(QUESTION), bob.submit("Qui est Sam Altman ?")
    alice.wait_for_answer(alice_before)
    bob.wait_for_answer(bob_before)
    alice.ask("Et Microsoft ?")
    assert alice.questions() == [QUESTION, "Et Microsoft ?"]
    assert bob.questions() == ["Qui est Sam Altman ?"]
    assert "80 milliards" in alice.answers().first.inner_text()
    bob.page.reload()
    bob.page.wait_for_selector("#question textarea")
    assert bob.questions() == []  # a new page is a new session, not someone else's


def test_uploaded_markup_is_shown_as_text_and_never_runs(url, workspace, chat_page_factory, tmp_path):
    hostile = tmp_path / "fromage.txt"
    hostile.write_text(
        "Le zorblax est un fromage bleu affiné à Grenoble pendant neuf semaines. "
        "<img src=x onerror=\"window.__pwned=1;console.log('XSS-RAN')\"> "
        "Le zorblax se mange avec du pain de seigle. "
        "<script>window.__pwned=2;console.log('XSS-RAN');alert('XSS')</script> "
        "Le zorblax a reçu une médaille d'or en 2019.\n",
        encoding="utf-8",
    )
    chat = chat_page_factory(url)
    documents_before = chat.page.locator("#index-info").inner_text()
    chat.page.click("#upload")
    chat.page.set_input_files("#files input[type=file]", str(hostile))
    chat.page.wait_for_selector("#files .file-preview, #files table", timeout=15_000)
    chat.page.click("#add-documents")
    chat.page.locator("#upload-result .upload-ok").wait_for(timeout=60_000)
    assert (workspace / "uploads" / "uploads" / "fromage.txt").is_file()
    assert chat.page.locator("#index-info").inner_text() != documents_before

    answer = chat.ask("Où est affiné le zorblax ?")
    assert "fromage.txt" in answer.inner_text()
    shown = answer.inner_text()
    assert "<img src=x onerror=" in shown or "<script>" in shown  # the markup is visible as text
    assert answer.locator("img, script").count() == 0
    assert chat.page.evaluate("() => window.__pwned") is None
    assert chat.dialogs == []
    assert not any("XSS-RAN" in line for line in chat.console)


def test_unreachable_backend_is_reported_in_the_chat(url, chat_page_factory):
    chat = chat_page_factory(url)
    chat.choose("backend", "openai")
    failed = chat.ask(QUESTION)
    assert "answer-error" in failed.get_attribute("class")
    assert failed.locator(".error-text").inner_text().strip()
    chat.choose("backend", "extractive")
    answer = chat.ask(QUESTION)
    assert "80 milliards" in answer.locator(".answer-text").inner_text()


def test_model_note_names_the_model_the_backend_will_use(url, chat_page_factory):
    chat = chat_page_factory(url)
    assert "No model" in chat.page.locator("#model-note").inner_text()
    chat.choose("backend", "ollama")  # llm.model unset: ollama calls its default, and its errors say so
    chat.page.wait_for_function("() => document.querySelector('#model-note').innerText.includes('llama3.2')")
    assert "(not set)" not in chat.page.locator("#model-note").inner_text()


def set_top_k(chat, value: int) -> None:
    field = chat.page.locator("#top-k input[type=number]")
    field.fill(str(value))
    field.press("Enter")
    chat.page.wait_for_function(
        "v => document.querySelector('#top-k input[type=range]').value === String(v)", arg=value
    )


def test_top_k_20_shows_readable_passages_not_the_whole_article(url, chat_page_factory):
    from rag.retrieval import MAX_PASSAGE_CHARS

    chat = chat_page_factory(url)
    set_top_k(chat, 20)
    answer = chat.ask(QUESTION)
    answer.evaluate("a => a.querySelectorAll('details').forEach(d => d.open = true)")
    lengths = [len(text) for text in answer.locator(".src-full").all_text_contents()]
    lengths += [len(t) for t in answer.locator(".src-text:not(:has(.src-full))").all_text_contents()]
    assert len(lengths) >= 3 and max(lengths) <= MAX_PASSAGE_CHARS + 60  # + the summary line


def test_the_whole_passage_replaces_the_excerpt_instead_of_repeating_it(url, chat_page_factory):
    chat = chat_page_factory(url)
    answer = chat.ask(QUESTION)
    card = answer.locator(".src-card:has(.src-full)").first
    excerpt = card.locator(".src-excerpt")
    assert excerpt.is_visible()
    card.locator(".src-full summary").click()
    assert not excerpt.is_visible()
    shown = card.locator(".src-text").inner_text()
    cited = card.locator(".src-full mark").first.inner_text()
    assert shown.count(cited) == 1  # the cited span appears once, in the whole passage
    assert "Show the excerpt only" in shown
    card.locator(".src-full summary").click()
    assert excerpt.is_visible()


def test_the_whole_passage_opens_on_its_quoted_span(url, chat_page_factory):
    """ "Show the whole passage" opened the passage below its link, in a box of 18 lines: with the link at
    the chat's bottom edge (where a person reading down clicks it) the passage and its quoted span opened
    out of view. It opens with the span in view, in its box and in the chat."""
    chat = chat_page_factory(url)
    answer = chat.ask("Combien Microsoft a-t-il investi dans OpenAI ?")  # its span is at the box's end
    cards = answer.locator(".src-card:has(.src-full mark)")
    assert cards.count() >= 1
    hidden = []
    for number in range(cards.count()):
        card = cards.nth(number)
        where = card.evaluate(
            """card => { const summary = card.querySelector('.src-full summary');
                         let box = summary.parentElement;
                         while (box.id !== 'chat' && !/auto|scroll/.test(getComputedStyle(box).overflowY)) box = box.parentElement;
                         box.scrollTop += summary.getBoundingClientRect().bottom - box.getBoundingClientRect().bottom + 2;
                         summary.click();
                         return new Promise(done => setTimeout(() => {
                             const r = (el) => { const b = el.getBoundingClientRect(); return [b.top, b.bottom]; };
                             const chat = r(box);
                             done({mark: r(card.querySelector('.src-full mark')), passage: r(card.querySelector('.src-full')),
                                   summary: r(card.querySelector('.src-full summary')),
                                   chat: [Math.max(0, chat[0]), Math.min(innerHeight, chat[1])]});
                         }, 400)); }"""
        )
        top, bottom = where["mark"]
        shown = all(start <= top and bottom <= end for start, end in (where["passage"], where["chat"]))
        # ... and so is its link back to the excerpt (where the keyboard's focus is), in the box
        if (
            not shown
            or not where["passage"][0] <= where["summary"][0] < where["summary"][1] <= where["passage"][1]
        ):
            hidden.append((number, where))
        chat.screenshot(f"whole-passage-{number}.png")
        card.locator(".src-full summary").click()
    assert hidden == [], hidden
