"""The controls people expect from a chat, in the browser: stop, regenerate, edit and resend, copy with
sources, export as Markdown, thumbs up/down with a comment. Scripted assistant (slow enough to stop)."""

from __future__ import annotations

from pathlib import Path

import pytest
from ui_browser import free_port
from ui_fakes import FakeAssistant

from rag.settings import Settings
from ui.accounts import Database
from ui.conversations import ConversationStore

pytestmark = [pytest.mark.browser, pytest.mark.slow]

QUESTION = "Quelle est la valorisation d'OpenAI ?"


@pytest.fixture(scope="module")
def server(seeds_dir: Path, tmp_path_factory: pytest.TempPathFactory, browser):
    from ui.app import build_app, serve

    workspace = tmp_path_factory.mktemp("controls")
    settings = Settings.model_validate({"ui": {"uploads_dir": str(workspace / "uploads")}})
    fake = FakeAssistant(sorted(seeds_dir.glob("*.txt")), settings, delay=0.6)  # 5 words: 3 s to stop it
    store = ConversationStore(Database(workspace / "chat.sqlite3"))
    demo = build_app(fake, conversations=store)
    url = serve(demo, "127.0.0.1", free_port(), block=False, quiet=True)
    yield url.rstrip("/"), store
    demo.close()


def test_stop_keeps_what_was_written_and_says_so(server, chat_page_factory):
    url, _ = server
    chat = chat_page_factory(url)
    ask, stop = chat.page.locator("#question .submit-button"), chat.page.locator("#question .stop-button")
    assert ask.is_visible() and not stop.is_visible()  # nothing to stop yet: no Stop beside Ask
    chat.submit(QUESTION)
    chat.page.wait_for_selector("#chat .answer-streaming .answer-text", timeout=30_000)
    assert stop.is_visible() and not ask.is_visible()  # Stop in Ask's place while the answer is written
    chat.page.get_by_role("button", name="Stop").click()
    stopped = chat.page.locator("#chat .answer-error")
    stopped.wait_for(timeout=15_000)
    assert "Stopped." in stopped.inner_text()
    # At once, while the stopped answer's run is still ending: the question must not be lost.
    answer = chat.ask("Qui est Sam Altman ?")
    assert "answer-error" not in answer.get_attribute("class")
    assert chat.questions() == [QUESTION, "Qui est Sam Altman ?"]
    assert "Stopped." in chat.page.locator("#chat .answer-error").inner_text()  # the stopped one stays
    assert ask.is_visible() and not stop.is_visible()


def test_each_browser_keeps_its_own_conversations_without_a_login(server, chat_page_factory):
    url, _ = server
    mine = chat_page_factory(url)
    mine.ask("Qui dirige OpenAI ?")
    mine.page.reload()  # the same browser: its id is kept, so is its list
    mine.page.wait_for_selector("#question textarea")
    mine.choose("conversations", "Qui dirige OpenAI ?")
    mine.page.wait_for_function("() => document.querySelectorAll('#chat .question').length === 1")
    assert mine.questions() == ["Qui dirige OpenAI ?"]

    other = chat_page_factory(url)  # another browser (its own storage): its own, empty, list
    other.page.click("#conversations input")
    offered = other.page.locator("#conversations li[role=option]").all_inner_texts()
    assert not any("dirige" in title for title in offered)


def test_the_list_shows_the_answered_conversation_at_once(server, chat_page_factory):
    """No reload: the answer's own update puts its conversation in the list, selected, newest first (the
    list comes with the answer, not from a request of its own after it)."""
    url, _ = server
    chat = chat_page_factory(url)
    selected = "() => document.querySelector('#conversations input').value"
    chat.ask("Qui dirige OpenAI ?")
    chat.page.wait_for_function(f"() => ({selected})() === 'Qui dirige OpenAI ?'", timeout=15_000)
    chat.new_conversation()
    sent: list[str] = []
    chat.page.on("request", lambda request: sent.append(request.url.split("/gradio_api/")[-1].split("?")[0]))
    chat.ask("Quelle est la valorisation d'OpenAI ?")
    chat.page.wait_for_function(f'() => ({selected})() === "Quelle est la valorisation d\'OpenAI ?"')
    assert sorted(sent) == ["queue/data", "queue/join"]  # the answer's event only (was a 3rd: the list)
    chat.page.click("#conversations input")
    options = chat.page.locator("#conversations li[role=option]")
    offered = [options.nth(n).get_attribute("aria-label") for n in range(options.count())]
    assert offered == ["Quelle est la valorisation d'OpenAI ?", "Qui dirige OpenAI ?"]  # newest first


def test_regenerate_edit_copy_export_and_feedback(server, browser):
    url, store = server
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    from ui_browser import ChatPage

    chat = ChatPage(context.new_page(), url).open()
    chat.ask(QUESTION)

    chat.page.click("#regenerate")  # the same question, answered again, in place
    chat.page.wait_for_function(
        "() => document.querySelectorAll('#chat .answer:not(.answer-streaming)').length === 1"
    )
    chat.page.wait_for_timeout(300)
    chat.wait_for_answer(0)
    assert chat.questions() == [QUESTION]

    chat.page.click("#edit-last")  # back into the box, to change and send
    chat.page.wait_for_function("() => !document.querySelector('#chat .question')")
    assert chat.page.locator("#question textarea").input_value() == QUESTION
    chat.page.fill("#question textarea", "Qui est Sam Altman ?")
    chat.page.press("#question textarea", "Enter")
    chat.wait_for_answer(0)
    assert chat.questions() == ["Qui est Sam Altman ?"]

    # What the page hands to the clipboard (headless Chromium has no system clipboard to read back).
    chat.page.evaluate("() => { navigator.clipboard.writeText = async (t) => { window.__copied = t; }; }")
    chat.page.click("#copy-answer")
    chat.page.wait_for_function("() => window.__copied")
    copied = chat.page.evaluate("() => window.__copied")
    assert "[1]" in copied and "openai-altman.fr.txt" in copied

    chat.page.click("#export")
    link = chat.page.locator("#export-file a").first
    link.wait_for(timeout=15_000)
    with chat.page.expect_download() as download:
        link.click()
    exported = Path(download.value.path()).read_text(encoding="utf-8")
    assert exported.startswith("# Qui est Sam Altman ?") and "Sources:\n[1] openai-altman.fr.txt" in exported

    chat.page.locator("#chat").get_by_role("button", name="Dislike").last.click()
    comment = chat.page.locator("#feedback-comment textarea")
    comment.wait_for()
    # The comment box is brought into view (it opened below the fold, under the note that offered it).
    chat.page.wait_for_function(
        "() => document.querySelector('#feedback-comment').getBoundingClientRect().bottom <= innerHeight",
        timeout=5_000,
    )
    comment.fill("La source ne parle pas de lui.")
    chat.page.click("#send-comment")
    chat.page.get_by_text("Comment kept").wait_for(timeout=10_000)
    with store.db.connect() as db:
        rating, comment, question, answer_json = db.execute(
            "SELECT rating, comment, question, answer_json FROM feedback ORDER BY id DESC LIMIT 1"
        ).fetchone()
    assert (rating, comment, question) == ("down", "La source ne parle pas de lui.", "Qui est Sam Altman ?")
    assert "openai-altman.fr.txt" in answer_json  # the passages are kept with it

    # The export and the feedback note belong to the conversation shown: gone with it (they stayed under a
    # new or a deleted conversation, the deleted one's download still offered).
    assert (
        chat.page.locator("#export-file").is_visible() and chat.page.get_by_text("Comment kept").is_visible()
    )
    chat.new_conversation()
    chat.page.locator("#export-file").wait_for(state="hidden", timeout=10_000)
    assert not chat.page.get_by_text("Comment kept").is_visible()
    context.close()
