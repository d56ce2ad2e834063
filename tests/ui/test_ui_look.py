"""How the page looks to a person: text contrast (WCAG AA, computed in the page) in light and dark mode,
a visible question box and Ask button, and a phone-sized layout with the question box on screen.

Each test fills the page with every kind of message first (answer with highlighted spans, error, upload
results), so a colour that only one of them uses is checked too. Screenshots go to test-artifacts/.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from ui_browser import (
    WATCH_HEADER_JS,
    ChatPage,
    contrast_failures,
    contrast_ratio,
    control_boundary,
    header_layout,
    serve_app,
)
from ui_fakes import FakeAssistant

from rag.errors import BackendError
from rag.settings import Settings
from ui.accounts import Database
from ui.conversations import ConversationStore

pytestmark = [pytest.mark.browser, pytest.mark.slow]

QUESTION = "Quelle est la valorisation d'OpenAI ?"


@pytest.fixture(scope="module")
def url(seeds_dir: Path, tmp_path_factory: pytest.TempPathFactory, browser) -> str:
    workspace = tmp_path_factory.mktemp("look")
    settings = Settings.model_validate({"ui": {"uploads_dir": str(workspace / "uploads")}})
    fake = FakeAssistant(
        sorted(seeds_dir.glob("*.txt")),
        settings,
        fail_backends={"openai": BackendError("The openai server at http://127.0.0.1:9/v1 is unreachable.")},
    )
    with serve_app(fake, ConversationStore(Database(workspace / "chat.sqlite3"))) as address:
        yield address


def open_page(browser, url: str, theme: str, width: int = 1280, height: int = 900) -> ChatPage:
    context = browser.new_context(viewport={"width": width, "height": height})
    context.add_init_script(WATCH_HEADER_JS)
    return ChatPage(context.new_page(), f"{url}/?__theme={theme}").open()


def fill_with_every_message(chat: ChatPage, tmp_path: Path) -> None:
    chat.choose("backend", "openai")
    chat.ask(QUESTION)  # an error message
    chat.choose("backend", "extractive")
    chat.ask(QUESTION)  # an answer with a cited, highlighted span
    chat.page.evaluate("() => document.querySelectorAll('#chat details').forEach(d => d.open = true)")
    bad = tmp_path / "tableur.xlsx"
    bad.write_bytes(b"PK\x03\x04")
    good = tmp_path / "notes.md"
    good.write_text("# Notes\nLe zorblax est un fromage bleu.\n", encoding="utf-8")
    chat.page.click("#upload")
    chat.page.set_input_files("#files input[type=file]", [str(bad), str(good)])
    chat.page.wait_for_selector("#files .file-preview, #files table", timeout=15_000)
    chat.page.click("#add-documents")
    chat.page.locator("#upload-result .upload-ok").wait_for(timeout=15_000)
    chat.page.locator("#upload-result .upload-error").wait_for()


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_every_text_meets_wcag_aa_contrast(url, browser, theme, tmp_path):
    chat = open_page(browser, url, theme)
    assert chat.page.evaluate("() => document.body.classList.contains('dark')") == (theme == "dark")
    fill_with_every_message(chat, tmp_path)
    chat.screenshot(f"look-{theme}.png")
    assert chat.page.locator("#chat .src-text mark").count() >= 1
    assert chat.page.locator("#chat .error-text").count() == 1
    failures = contrast_failures(chat.page)
    assert failures == [], f"texts below WCAG AA in {theme} mode: {failures}"
    chat.page.context.close()


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_question_box_and_ask_button_stand_out(url, browser, theme):
    chat = open_page(browser, url, theme)
    look = chat.page.evaluate(
        """() => {
            const s = (sel) => getComputedStyle(document.querySelector(sel));
            const box = s('#question'), button = s('#question .submit-button');
            let page = document.querySelector('#question').parentElement;
            while (getComputedStyle(page).backgroundColor === 'rgba(0, 0, 0, 0)') page = page.parentElement;
            return {border: box.borderTopColor, borderWidth: parseFloat(box.borderTopWidth),
                    page: getComputedStyle(page).backgroundColor, box: box.backgroundColor,
                    button: button.backgroundColor, buttonText: button.color};
        }"""
    )
    # WCAG 1.4.11: the boundary of a control needs 3:1 against what is around it.
    assert look["borderWidth"] >= 1
    assert contrast_ratio(chat.page, look["border"], look["page"]) >= 3, look
    assert contrast_ratio(chat.page, look["button"], look["box"]) >= 3, look
    assert contrast_ratio(chat.page, look["buttonText"], look["button"]) >= 4.5, look
    chat.page.context.close()


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_phone_shows_the_question_box_without_scrolling(url, browser, theme):
    chat = open_page(browser, url, theme, width=390, height=844)
    chat.screenshot(f"phone-{theme}.png")

    def on_screen(selector: str) -> bool:
        box = chat.page.locator(selector).bounding_box()
        return (
            box is not None
            and box["y"] >= 0
            and box["y"] + box["height"] <= 844
            and box["x"] >= 0
            and box["x"] + box["width"] <= 390
        )

    actions = ["#new-conversation", "#regenerate", "#edit-last", "#copy-answer", "#export"]
    assert on_screen("#question textarea") and on_screen("#question .submit-button")
    # The actions sat behind the fixed question box, under the chat: they are in its bar, each in sight.
    hidden = [selector for selector in actions if not on_screen(selector)]
    assert hidden == [], [chat.page.locator(selector).bounding_box() for selector in hidden]
    assert chat.page.evaluate("() => document.documentElement.scrollWidth") <= 390  # no sideways scrolling
    # The placeholder fits on one line (it wrapped to two and made the box a line taller than a question).
    box = chat.page.locator("#question textarea")
    empty_height = box.evaluate("el => el.getBoundingClientRect().height")
    box.fill("x")
    assert box.evaluate("el => el.getBoundingClientRect().height") == empty_height
    box.fill("")
    # The chat ends above the bar: nothing of it is hidden at the page's first view.
    assert chat.page.evaluate(
        """() => document.querySelector('#chat').getBoundingClientRect().bottom
                 <= document.querySelector('.ask-bar').getBoundingClientRect().top"""
    )
    chat.ask(QUESTION)  # and after an answer, still reachable without scrolling back
    assert on_screen("#question textarea") and all(on_screen(selector) for selector in actions)
    # Nothing the page scrolls under the fixed question bar shows through it (labels have their own layers).
    covered = chat.page.evaluate(
        """() => {
            const row = document.querySelector('.ask-bar');
            const hidden = [];
            for (let y = 0; y < document.documentElement.scrollHeight; y += 120) {
                window.scrollTo(0, y);
                const r = row.getBoundingClientRect();
                for (const fx of [0.05, 0.2, 0.35, 0.5, 0.65, 0.8, 0.95]) {
                    for (const fy of [0.2, 0.5, 0.8]) {
                        const el = document.elementFromPoint(r.left + fx * r.width, r.top + fy * r.height);
                        if (el && !row.contains(el)) hidden.push(`${y}: ${el.tagName} ${el.textContent.slice(0, 40)}`);
                    }
                }
            }
            window.scrollTo(0, 0);
            return hidden;
        }"""
    )
    assert covered == []
    # And the end of the page scrolls out from under the bar ("Add documents" stayed under it, unreachable).
    chat.page.evaluate("() => window.scrollTo(0, document.documentElement.scrollHeight)")
    under = chat.page.evaluate(
        """() => document.querySelector('.ask-bar').getBoundingClientRect().top
                 - document.querySelector('#upload').getBoundingClientRect().bottom"""
    )
    assert under >= 0, f"'Add documents' is {-under:.0f} px under the question bar"
    chat.page.evaluate("() => window.scrollTo(0, 0)")
    chat.screenshot(f"phone-{theme}-answer.png")
    assert contrast_failures(chat.page) == []
    # A thumb down opens the comment box in the bar, on screen and with the line's room (it had 194 px of 370).
    chat.page.locator("#chat").get_by_role("button", name="Dislike").last.click()
    chat.page.locator("#feedback-comment textarea").wait_for()
    assert on_screen("#feedback-comment") and on_screen("#send-comment")
    assert chat.page.locator("#feedback-comment").bounding_box()["width"] >= 0.6 * 370
    # The exported file takes one line of the bar (with its label and padding it took 130 px, and the chat
    # above the bar shrank to its least height).
    chat.page.click("#export")
    chat.page.locator("#export-file a").wait_for(timeout=15_000)
    assert on_screen("#export-file a")
    assert chat.page.locator("#export-file").bounding_box()["height"] <= 60
    chat.page.context.close()


@pytest.mark.parametrize(("width", "height"), [(1280, 860), (390, 844)])
def test_no_empty_band_above_the_banner_and_the_page_does_not_move(url, browser, width, height):
    """Without a login the account line is empty: it takes no room from the first paint on (it kept its
    padding and two gaps, a 62 px band between the subtitle and the banner). The header lines up with the
    columns below it, and the page keeps its width when the first answer comes (it grew by 100 px)."""
    chat = open_page(browser, url, "light", width, height)
    chat.page.wait_for_timeout(300)  # past the page's load events
    before = header_layout(chat.page)
    assert before["account"] is None
    assert len(before["gaps"]) >= 2 and max(before["gaps"]) <= 20, before  # the column's 16 px gap
    assert abs(before["title"]["left"] - before["chat"]["left"]) <= 1, before
    assert abs(before["banner"]["left"] - before["chat"]["left"]) <= 1, before
    assert abs(before["banner"]["right"] - (before["side"] or before["chat"])["right"]) <= 1, before
    chat.ask(QUESTION)
    after = header_layout(chat.page)
    for edge in ("left", "right"):
        assert after["chat"][edge] == before["chat"][edge] and after["banner"][edge] == before["banner"][edge]
    chat.page.context.close()


# The page's controls, each a box a person can see. Soft drew the text fields with a near-white border on
# white and the secondary buttons white on white (1.0-1.1:1).
CONTROLS = [
    "#new-conversation",
    "#regenerate",
    "#edit-last",
    "#copy-answer",
    "#export",
    "#rename-conversation",
    "#delete-conversation",
    "#conversation-title textarea",
    "#conversations input",
    "#top-k input[type=number]",
    "#backend input",
    "#chat button.example",
]


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_every_control_has_a_visible_boundary_and_the_actions_fit_one_line(url, browser, theme):
    chat = open_page(browser, url, theme, 1280, 860)
    examples = "#chat button.example"  # (shown while the chat is empty)
    ratios = {examples: control_boundary(chat.page, examples)}
    chat.ask(QUESTION)  # every action active (an inactive control is exempt from WCAG 1.4.11)
    chat.page.click("#upload")  # and the drop zone of the upload panel
    chat.page.wait_for_selector("#files")
    for selector in [*CONTROLS, "#files"]:
        ratios.setdefault(selector, control_boundary(chat.page, selector))
    faint = {selector: ratio for selector, ratio in ratios.items() if ratio is None or ratio < 3}
    assert faint == {}, ratios  # WCAG 1.4.11
    # Delete reads as destructive: its text is not the colour of Rename's.
    colour = "el => getComputedStyle(el).color"
    assert chat.page.eval_on_selector("#delete-conversation", colour) != chat.page.eval_on_selector(
        "#rename-conversation", colour
    )
    # ... and stays so under the pointer: in dark mode its hover fill was the primary indigo (Soft's
    # secondary hover), and in light mode its red border faded to pale grey. Hovered, its fill is reddish
    # (red above blue), its text stays readable on it and its boundary visible.
    chat.page.hover("#delete-conversation")
    chat.page.wait_for_timeout(300)  # Gradio's transition
    fill, text, border = chat.page.eval_on_selector(
        "#delete-conversation",
        "el => { const s = getComputedStyle(el); return [s.backgroundColor, s.color, s.borderTopColor]; }",
    )
    red, _, blue = (int(v) for v in fill[fill.index("(") + 1 : fill.index(")")].split(",")[:3])
    assert red > blue, fill
    assert contrast_ratio(chat.page, text, fill) >= 4.5, (text, fill)
    assert control_boundary(chat.page, "#delete-conversation") >= 3, border
    # The five actions under the chat on one line, on screen at 1280x860 (they took two lines, the second
    # below the fold), and Rename beside Delete.
    tops = chat.page.eval_on_selector_all(
        ".chat-actions button", "els => els.map(el => Math.round(el.getBoundingClientRect().top))"
    )
    assert len(tops) == 5 and len(set(tops)) == 1 and tops[0] < 860 - 40, tops
    top = "el => Math.round(el.getBoundingClientRect().top)"
    assert chat.page.eval_on_selector("#rename-conversation", top) == chat.page.eval_on_selector(
        "#delete-conversation", top
    )
    chat.page.context.close()


def test_each_answer_is_shown_from_its_question_down(url, browser):
    """On a phone the chat is 464 px high and an answer with its sources is taller: the chat kept to its
    bottom, the question and the answer's first lines out of view. Each new question now comes to the
    top of the chat and its answer is read from its start."""
    chat = open_page(browser, url, "dark", width=390, height=844)

    def shown_from_the_top() -> dict:
        return chat.page.evaluate(
            """() => {
                const questions = document.querySelectorAll('#chat .question');
                const question = questions[questions.length - 1].getBoundingClientRect();
                const answers = document.querySelectorAll('#chat .answer');
                const answer = answers[answers.length - 1].getBoundingClientRect();
                let box = document.querySelector('#chat .question').parentElement;
                while (box && !(['auto', 'scroll'].includes(getComputedStyle(box).overflowY) && box.scrollHeight > box.clientHeight)) box = box.parentElement;
                const view = box.getBoundingClientRect();
                return {question: question.top - view.top, answer: answer.top - view.top, tall: answer.height > view.height / 2,
                        view: view.height, end: box.scrollTop + box.clientHeight >= box.scrollHeight - 2};
            }"""
        )

    chat.ask(QUESTION)
    chat.page.wait_for_timeout(500)  # past Gradio's own scroll, 300 ms after an update
    first = shown_from_the_top()
    assert first["tall"] and 0 <= first["question"] < 40 and first["answer"] < first["view"] / 2, first
    chat.ask("Qui est Sam Altman ?")
    chat.page.wait_for_timeout(500)
    second = shown_from_the_top()  # at the top, or as high as the chat scrolls (a short answer)
    assert 0 <= second["question"] < (second["view"] if second["end"] else 40), second
    assert second["answer"] < second["view"] - 40, second
    # Gradio's "Scroll down" button (shown while the chat is not at its end) never shows through the question
    # bar: here the bar grown by a long question being typed. (The chat now shrinks with the bar and the
    # button stays above it; at the chat's least height, 200 px, it would go under the bar, not over.)
    chat.page.evaluate(
        """() => { const questions = document.querySelectorAll('#chat .question');
                   let box = questions[0].parentElement;
                   while (!(['auto', 'scroll'].includes(getComputedStyle(box).overflowY) && box.scrollHeight > box.clientHeight)) box = box.parentElement;
                   box.scrollTop = 0; box.dispatchEvent(new Event('scroll')); }"""
    )
    chat.page.fill("#question textarea", "Pourquoi ?\n" * 6)
    chat.page.locator("#chat .scroll-down-button-container button").wait_for(timeout=5_000)
    on_top = chat.page.evaluate(
        """() => { const bar = document.querySelector('.ask-bar').getBoundingClientRect();
                   const button = document.querySelector('#chat .scroll-down-button-container button').getBoundingClientRect();
                   if (button.bottom <= bar.top) return 'above the bar';
                   const el = document.elementFromPoint(button.left + button.width / 2, Math.max(button.top, bar.top) + 2);
                   return document.querySelector('.ask-bar').contains(el) ? 'bar' : el.outerHTML.slice(0, 80); }"""
    )
    chat.screenshot("phone-scroll-down-button.png")
    assert on_top in ("above the bar", "bar"), on_top
    chat.page.context.close()


def test_no_thumbs_under_an_error(url, browser):
    """An error is not an answer to rate: Gradio offered thumbs under every assistant message."""
    chat = open_page(browser, url, "light", 1280, 860)
    chat.choose("backend", "openai")
    chat.ask(QUESTION)  # an error
    chat.choose("backend", "extractive")
    chat.ask(QUESTION)  # an answer
    thumbs = chat.page.evaluate(
        """() => Array.from(document.querySelectorAll('#chat .message-row.bot-row')).map(row => [
            row.querySelector('.answer-error') ? 'error' : 'answer',
            Array.from(row.querySelectorAll('button[aria-label=Like], button[aria-label=Dislike]'))
                 .filter(b => b.getClientRects().length > 0).length])"""
    )
    assert thumbs == [["error", 0], ["answer", 2]], thumbs
    chat.page.context.close()


@pytest.mark.parametrize(("width", "height"), [(1280, 860), (390, 844)])
def test_an_empty_question_says_what_to_do_next_to_the_box(url, browser, width, height):
    """Ask with nothing typed did nothing and said nothing: a hint under the box, no dialog, gone once typing."""
    chat = open_page(browser, url, "dark", width, height)
    hint = chat.page.locator("#question-hint .question-hint")
    assert not hint.is_visible()
    chat.page.click("#question .submit-button")
    hint.wait_for(state="visible", timeout=5_000)
    assert "Type your question" in hint.inner_text()
    where = chat.page.evaluate(
        """() => { const box = document.querySelector('#question').getBoundingClientRect();
                   const hint = document.querySelector('#question-hint .question-hint').getBoundingClientRect();
                   return {gap: hint.top - box.bottom, left: hint.left - box.left, bottom: hint.bottom}; }"""
    )
    assert 0 <= where["gap"] <= 24 and abs(where["left"]) <= 12 and where["bottom"] <= height, where
    chat.screenshot(f"empty-question-{width}.png")
    assert chat.dialogs == [] and chat.questions() == []  # nothing sent, no pop-up
    chat.page.type("#question textarea", "Qui")
    assert not hint.is_visible()
    chat.page.fill("#question textarea", "")
    chat.page.press("#question textarea", "Enter")  # Enter says it too
    hint.wait_for(state="visible", timeout=5_000)
    chat.ask(QUESTION)  # a real question takes it away, also once the box is emptied after it
    assert not hint.is_visible()
    chat.page.context.close()


def test_a_refused_question_says_why_in_sight_on_a_phone(url, browser):
    """A too-long question is refused in the chat, its start shown: the message saying why must be on
    screen, above the question box (it was under it, the question's first 300 characters above)."""
    chat = open_page(browser, url, "dark", width=390, height=844)
    chat.page.fill("#question textarea", "Pourquoi " * 600)
    chat.page.press("#question textarea", "Enter")
    chat.page.locator("#chat .error-text").wait_for()
    chat.page.wait_for_timeout(500)  # past the scroll that brings the question to the top
    where = chat.page.evaluate(
        """() => ({error: document.querySelector('#chat .error-text').getBoundingClientRect().bottom,
                   bar: document.querySelector('.ask-bar').getBoundingClientRect().top})"""
    )
    chat.screenshot("phone-refused-question.png")
    assert where["error"] <= where["bar"], where
    chat.page.context.close()


def _pixel(png: bytes, fx: float, fy: float) -> str:
    """The colour at (fx, fy) of a screenshot, as CSS."""
    from io import BytesIO

    from PIL import Image

    image = Image.open(BytesIO(png)).convert("RGB")
    r, g, b = image.getpixel((int(fx * (image.width - 1)), int(fy * (image.height - 1))))
    return f"rgb({r}, {g}, {b})"


def test_the_upload_progress_bar_reads_as_a_bar_in_dark_mode(seeds_dir, browser, tmp_path):
    """Before the indexer counted anything (0 of n files), Chromium drew the bar as a flat mid-grey block
    on the dark card (it looked broken, or disabled). The empty track is now the card's own fill inside a
    visible outline (WCAG 1.4.11: 3:1), and the part done stands out from the track (3:1)."""
    settings = Settings.model_validate({"ui": {"uploads_dir": str(tmp_path / "uploads")}})
    fake = FakeAssistant(sorted(seeds_dir.glob("*.txt")), settings, index_delay=2.5)
    files = []
    for name in ("un.md", "deux.md"):
        (tmp_path / name).write_text(f"# {name}\nLe zorblax est un fromage bleu.\n", encoding="utf-8")
        files.append(str(tmp_path / name))
    with serve_app(fake) as address:
        chat = open_page(browser, address, "dark")
        chat.page.click("#upload")
        chat.page.set_input_files("#files input[type=file]", files)
        chat.page.wait_for_selector("#files .file-preview, #files table", timeout=15_000)
        chat.page.click("#add-documents")
        bar = chat.page.locator('#upload-result progress.upload-progress[value="0"]')
        bar.wait_for(timeout=10_000)
        card = chat.page.evaluate(
            """() => { let el = document.querySelector('#upload-result');
                       while (getComputedStyle(el).backgroundColor === 'rgba(0, 0, 0, 0)') el = el.parentElement;
                       return getComputedStyle(el).backgroundColor; }"""
        )
        outline = bar.evaluate("el => getComputedStyle(el).borderTopColor")
        empty = _pixel(bar.screenshot(), 0.5, 0.5)
        chat.screenshot("upload-progress-dark-empty.png")
        assert contrast_ratio(chat.page, empty, card) < 1.5, (empty, card)  # no grey block
        assert contrast_ratio(chat.page, outline, card) >= 3, (outline, card)
        half = chat.page.locator('#upload-result progress.upload-progress[value="1"]')
        half.wait_for(timeout=10_000)
        png = half.screenshot()
        done, left = _pixel(png, 0.2, 0.5), _pixel(png, 0.8, 0.5)
        chat.screenshot("upload-progress-dark-half.png")
        assert contrast_ratio(chat.page, done, left) >= 3, (done, left)
        chat.page.locator("#upload-result .upload-ok").wait_for(timeout=15_000)
        chat.page.context.close()


def test_an_empty_conversation_list_says_so(url, browser):
    """After the last conversation was deleted (and on a first visit) the list was an empty box that said
    nothing: under its label, what it will hold; gone once it holds a conversation."""
    chat = open_page(browser, url, "light")
    hint = chat.page.locator("#conversations").get_by_text("No conversations yet")
    hint.wait_for(timeout=10_000)
    chat.ask(QUESTION)
    hint.wait_for(state="detached", timeout=10_000)
    assert chat.page.locator("#conversations input").input_value().startswith("Quelle est la valorisation")
    chat.page.click("#delete-conversation")
    hint.wait_for(timeout=10_000)
    assert chat.page.locator("#conversations input").input_value() == ""
    chat.screenshot("conversations-empty.png")
    chat.page.context.close()


def test_the_feedback_note_gives_the_phone_bar_its_room_back(url, browser):
    """On a phone the note under a thumb ("Thanks: kept for review…", then "Comment kept…") stayed in the
    fixed question bar for good, the chat above it a line shorter. It is read, then gives its line back;
    the chat is never under the bar meanwhile."""
    chat = open_page(browser, url, "dark", width=390, height=844)
    chat.ask(QUESTION)
    chat.page.wait_for_timeout(300)
    measure = """() => { const box = (s) => document.querySelector(s)?.getBoundingClientRect();
        return {bar: box('.ask-bar').height, barTop: box('.ask-bar').top, chatBottom: box('#chat').bottom,
                note: box('#feedback-note')?.height || 0}; }"""
    before = chat.page.evaluate(measure)
    chat.page.locator("#chat").get_by_role("button", name="Dislike").last.click()
    chat.page.get_by_text("Thanks: kept for review").wait_for(timeout=10_000)
    shown = chat.page.evaluate(measure)
    assert shown["note"] > 0 and shown["chatBottom"] <= shown["barTop"], shown
    chat.page.wait_for_function(f"() => ({measure})().note < 1", timeout=10_000)
    chat.page.fill("#feedback-comment textarea", "La source ne dit pas cela.")
    chat.page.click("#send-comment")
    chat.page.get_by_text("Comment kept").wait_for(timeout=10_000)
    assert chat.page.get_by_text("Comment kept").is_visible()
    chat.screenshot("phone-feedback-kept.png")
    chat.page.wait_for_function(
        f"(height) => Math.abs(({measure})().bar - height) < 1", arg=before["bar"], timeout=10_000
    )
    after = chat.page.evaluate(measure)
    assert after["chatBottom"] <= after["barTop"], after
    chat.page.context.close()


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_the_keyboard_focus_shows_on_every_control(url, browser, theme):
    """Tabbing through the page, each control looks different while it has the focus (WCAG 2.4.7): the
    question box, the dropdowns, the slider and the drop zone looked the same with it and without it."""
    from io import BytesIO

    from PIL import Image, ImageChops

    chat = open_page(browser, url, theme, 1280, 860)
    chat.page.click("#upload")  # the upload panel's controls too
    chat.page.wait_for_selector("#files")
    chat.page.mouse.click(5, 5)

    def shot(clip: dict) -> Image.Image:
        return Image.open(BytesIO(chat.page.screenshot(clip=clip))).convert("RGB")

    unmarked, stops = [], 0
    for _ in range(40):
        chat.page.keyboard.press("Tab")
        focused = chat.page.evaluate(
            """() => { const el = document.activeElement;
                       if (el === document.body) return null;
                       el.scrollIntoView({block: 'center'});  // (its box and the ring around it)
                       const r = el.getBoundingClientRect();
                       return {name: `${el.closest('[id]')?.id} ${el.tagName} ${(el.innerText || el.value || '').slice(0, 20)}`,
                               clip: {x: Math.max(0, r.left - 24), y: Math.max(0, r.top - 24), width: r.width + 48, height: r.height + 48}}; }"""
        )
        if focused is None:
            break
        stops += 1
        chat.page.wait_for_timeout(250)  # past the theme's transitions
        with_focus = shot(focused["clip"])
        chat.page.evaluate("() => { window.__focused = document.activeElement; window.__focused.blur(); }")
        chat.page.wait_for_timeout(250)
        without = shot(focused["clip"])
        chat.page.evaluate("() => window.__focused.focus({focusVisible: true})")
        difference = ImageChops.difference(with_focus, without).get_flattened_data()
        changed = sum(1 for pixel in difference if max(pixel) > 40)
        if changed < 50:  # (a caret is not a focus mark)
            unmarked.append((focused["name"], changed))
    assert stops >= 20, stops
    assert unmarked == [], unmarked
    chat.page.context.close()


def test_a_question_sent_from_the_phone_bar_is_answered_in_sight(url, browser):
    """On a phone the question bar is always there, also with the settings in view at the end of the page:
    a question sent from there was answered out of sight, the chat scrolled away above."""
    chat = open_page(browser, url, "dark", width=390, height=844)
    chat.page.evaluate("() => window.scrollTo(0, document.documentElement.scrollHeight)")
    chat.page.wait_for_timeout(300)
    assert chat.page.evaluate("() => document.querySelector('#chat').getBoundingClientRect().bottom") < 0
    chat.ask(QUESTION)
    chat.page.wait_for_timeout(500)
    where = chat.page.evaluate(
        """() => ({question: document.querySelector('#chat .question').getBoundingClientRect().top,
                   bar: document.querySelector('.ask-bar').getBoundingClientRect().top})"""
    )
    chat.screenshot("phone-answer-in-sight.png")
    assert 0 <= where["question"] < where["bar"] - 40, where
    chat.page.context.close()


@pytest.mark.parametrize(("width", "height"), [(1280, 860), (390, 844)])
def test_the_comment_box_lines_up_with_its_button_and_the_question_box(url, browser, width, height):
    """After a thumb, the comment box sat in a card of its own (a lighter panel in dark mode), 12 px in from
    the question box above it, and its button 10 px above the box's middle."""
    chat = open_page(browser, url, "dark", width, height)
    chat.ask(QUESTION)
    chat.page.locator("#chat").get_by_role("button", name="Dislike").last.click()
    chat.page.locator("#feedback-comment textarea").wait_for()
    chat.page.wait_for_timeout(300)
    look = chat.page.evaluate(
        """() => { const box = (s) => document.querySelector(s).getBoundingClientRect();
                   const middle = (r) => r.top + r.height / 2;
                   const comment = box('#feedback-comment textarea'), send = box('#send-comment');
                   return {middles: middle(send) - middle(comment), left: comment.left - box('#question').left,
                           card: getComputedStyle(document.querySelector('#feedback-comment')).backgroundColor}; }"""
    )
    chat.screenshot(f"comment-row-{width}.png")
    assert abs(look["middles"]) <= 2, look
    assert abs(look["left"]) <= 2, look
    assert look["card"] in ("rgba(0, 0, 0, 0)", "transparent"), look
    chat.page.context.close()


def test_the_drop_zone_label_is_a_label_not_a_button_in_dark_mode(url, browser):
    """In dark mode Gradio drew the drop zone's label as an indigo chip with white bold text: it read as a
    selected button (it is not one). It is a plain label on the zone's own fill, like the other labels."""
    chat = open_page(browser, url, "dark")
    chat.page.click("#upload")
    label = chat.page.locator('#files label[data-testid="block-label"]')
    label.wait_for()
    look = label.evaluate(
        """el => { let zone = el.parentElement;
                   while (getComputedStyle(zone).backgroundColor === 'rgba(0, 0, 0, 0)') zone = zone.parentElement;
                   return {fill: getComputedStyle(el).backgroundColor, zone: getComputedStyle(zone).backgroundColor,
                           text: getComputedStyle(el).color,
                           other: getComputedStyle(document.querySelector('#collection [data-testid=block-info]')).color}; }"""
    )
    label.scroll_into_view_if_needed()
    chat.screenshot("drop-zone-dark.png")
    fill = look["fill"] if look["fill"] not in ("rgba(0, 0, 0, 0)", "transparent") else look["zone"]
    assert contrast_ratio(chat.page, fill, look["zone"]) < 1.2, look  # no chip of its own
    assert contrast_ratio(chat.page, look["text"], look["zone"]) >= 4.5, look
    assert look["text"] == look["other"], look  # the colour of the other labels
    chat.page.context.close()


def test_rename_and_delete_are_inactive_with_no_conversation_selected(url, browser):
    """Rename and Delete looked ready with nothing to act on (no conversation selected, or none at all),
    and Regenerate, Edit, Copy and Export with an empty chat. Inactive, each is its usual self faded, not
    Gradio's look for it (its hover fill: the primary indigo for Rename in dark mode)."""
    chat = open_page(browser, url, "dark")
    listed, actions = (
        ["#rename-conversation", "#delete-conversation"],
        ["#regenerate", "#edit-last", "#copy-answer", "#export"],
    )
    state = "(ids) => ids.map(id => document.querySelector(id).disabled)"
    look = """(ids) => ids.map(id => { const s = getComputedStyle(document.querySelector(id));
                                   return [s.backgroundColor, parseFloat(s.opacity)]; })"""
    chat.page.wait_for_function(
        f"(ids) => ({state})(ids).every(Boolean)", arg=listed + actions, timeout=10_000
    )
    chat.page.mouse.move(0, 0)
    chat.page.wait_for_timeout(300)  # Gradio's transition
    inactive = chat.page.evaluate(look, listed)
    chat.screenshot("conversation-actions-inactive-dark.png")
    chat.ask(QUESTION)  # the answered conversation is selected in the list
    chat.page.wait_for_function(
        f"(ids) => !({state})(ids).some(Boolean)", arg=listed + actions, timeout=10_000
    )
    chat.page.wait_for_timeout(300)
    active = chat.page.evaluate(look, listed)
    assert [fill for fill, _ in inactive] == [fill for fill, _ in active], (inactive, active)
    assert all(opacity <= 0.6 for _, opacity in inactive) and all(o == 1 for _, o in active), (
        inactive,
        active,
    )
    chat.new_conversation()  # nothing selected, nothing in the chat
    chat.page.wait_for_function(
        f"(ids) => ({state})(ids).every(Boolean)", arg=listed + actions, timeout=10_000
    )
    chat.page.click("#conversations input")  # one opened from the list
    chat.page.locator("#conversations li[role=option]").first.click()
    chat.page.wait_for_function(
        f"(ids) => !({state})(ids).some(Boolean)", arg=listed + actions, timeout=10_000
    )
    chat.screenshot("conversations-selected.png")
    chat.page.context.close()


def test_a_second_thumb_down_on_the_phone_shows_its_note_again(url, browser):
    """On a phone the note under a thumb goes after 4 s; a second thumb down (on another answer) gave the
    same note, which Gradio left in place, gone: nothing said the thumb was kept."""
    chat = open_page(browser, url, "dark", width=390, height=844)
    chat.ask(QUESTION)
    chat.ask(QUESTION)
    height = "() => document.querySelector('#feedback-note')?.getBoundingClientRect().height || 0"
    dislikes = chat.page.locator("#chat").get_by_role("button", name="Dislike")
    dislikes.first.click()
    chat.page.wait_for_function(f"() => ({height})() > 10", timeout=10_000)
    chat.page.wait_for_function(f"() => ({height})() < 1", timeout=10_000)  # read, then gone
    dislikes.last.click()
    chat.page.wait_for_timeout(1_000)
    chat.screenshot("phone-second-thumb.png")
    assert chat.page.evaluate(height) > 10
    chat.page.context.close()


def test_typing_on_a_fresh_page_goes_into_the_question_box(url, browser):
    """With the keyboard only, the page opened with the focus nowhere: six Tabs (the banner's details, four
    examples) before the question box. A fresh page takes what is typed into the box, Enter asks."""
    chat = open_page(browser, url, "light")
    chat.page.wait_for_function(
        "() => document.activeElement === document.querySelector('#question textarea')"
    )
    before = chat.answers().count()
    chat.page.keyboard.type(QUESTION)
    chat.page.keyboard.press("Enter")
    chat.wait_for_answer(before)
    assert chat.questions() == [QUESTION]
    chat.page.context.close()


def test_the_title_box_shows_the_conversation_title_once_it_has_one(url, browser):
    """After the first answer the conversation is in the list, selected, but the Title box under it stayed
    empty ("Rename the open conversation"): renaming meant typing the whole title again. It shows the title
    once the conversation has one, and is emptied with a new conversation."""
    chat = open_page(browser, url, "light")
    title = chat.page.locator("#conversation-title textarea, #conversation-title input").first
    chat.ask(QUESTION)
    chat.page.wait_for_function(
        "() => document.querySelector('#conversations input').value.startsWith('Quelle est')", timeout=10_000
    )
    chat.page.wait_for_function(
        "() => document.querySelector('#conversation-title textarea, #conversation-title input')"
        ".value === document.querySelector('#conversations input').value",
        timeout=10_000,
    )
    assert title.input_value() == QUESTION
    chat.screenshot("title-box-after-first-answer.png")
    chat.ask("Sam Altman possède-t-il des parts d'OpenAI ?")  # a follow-up leaves it as it is
    assert title.input_value() == QUESTION
    chat.new_conversation()
    chat.page.wait_for_function(
        "() => !document.querySelector('#conversation-title textarea, #conversation-title input').value",
        timeout=10_000,
    )
    chat.page.context.close()


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_the_phone_header_leaves_the_height_to_the_conversation(url, browser, theme):
    """At 390x844 the title, a four-line subtitle and a five-line banner took 290 px before the chat began
    (a third of the room above the question bar). The header is the title and a banner of two lines; the
    banner's text and notes are one tap away, in full."""
    chat = open_page(browser, url, theme, width=390, height=844)
    chat.page.wait_for_timeout(300)  # past the page's load events
    top = "() => document.querySelector('#chat').getBoundingClientRect().top"
    assert chat.page.evaluate(top) <= 130, chat.page.evaluate(top)
    banner = chat.page.locator("#mode-banner .banner")
    assert banner.bounding_box()["height"] <= 56, banner.bounding_box()
    assert banner.get_by_text("Offline mode").is_visible()
    chat.screenshot(f"phone-header-{theme}.png")
    chat.page.click("#mode-banner summary")
    text = banner.locator(".banner-text")
    text.wait_for()
    assert "keyword search" in text.inner_text() and banner.locator("li").first.is_visible()
    chat.screenshot(f"phone-header-{theme}-open.png")
    chat.page.context.close()


# The text lines of the chat (their boxes, within the chat's view) under the chat's "Scroll down" arrow.
_TEXT_UNDER_ARROW_JS = """() => {
  const arrow = document.querySelector('#chat .scroll-down-button-container button').getBoundingClientRect();
  const chat = document.querySelector('#chat').getBoundingClientRect();
  const walker = document.createTreeWalker(document.querySelector('#chat'), NodeFilter.SHOW_TEXT);
  const under = [];
  for (let text = walker.nextNode(); text; text = walker.nextNode()) {
    if (!text.textContent.trim() || text.parentElement.closest('.scroll-down-button-container')) continue;
    const range = document.createRange();
    range.selectNodeContents(text);
    for (const line of range.getClientRects()) {
      if (line.bottom < chat.top || line.top > chat.bottom) continue;
      if (line.right > arrow.left && line.left < arrow.right && line.bottom > arrow.top && line.top < arrow.bottom)
        under.push(text.textContent.trim().slice(0, 40));
    }
  }
  return under;
}"""


@pytest.mark.parametrize(("theme", "width", "height"), [("dark", 390, 844), ("light", 1280, 500)])
def test_the_scroll_down_arrow_sits_beside_the_text_not_over_it(url, browser, theme, width, height):
    """Gradio's "Scroll down" arrow sat in the middle of the chat's bottom, over the answer's words (on a
    phone it hid a word of a source card in every line that passed under it), with no edge of its own. It
    sits in the chat's right margin, a button with a visible edge (WCAG 1.4.11)."""
    chat = open_page(browser, url, theme, width=width, height=height)
    chat.ask(QUESTION)
    chat.ask("What financial challenges does OpenAI face?")
    chat.page.wait_for_timeout(500)  # the chat's scrolling to the new question settles
    chat.page.mouse.move(200, 300)
    chat.page.mouse.wheel(0, -3000)  # back to the first question: the arrow shows
    arrow = chat.page.locator("#chat .scroll-down-button-container button")
    arrow.wait_for(timeout=10_000)
    chat.page.wait_for_timeout(300)
    chat.screenshot(f"scroll-arrow-{theme}-{width}.png")
    assert chat.page.evaluate(_TEXT_UNDER_ARROW_JS) == []
    assert control_boundary(chat.page, "#chat .scroll-down-button-container button") >= 3
    chat.page.context.close()


# Before the page's scripts run: every repeating timer the page starts, with its period.
_WATCH_TIMERS_JS = """
(() => {
  window.pageTimers = [];
  const start = window.setInterval;
  window.setInterval = function (fn, ms, ...rest) { window.pageTimers.push(ms || 0); return start.call(this, fn, ms, ...rest); };
})();
"""


def test_the_page_does_no_work_on_a_timer_while_nothing_happens(url, browser):
    """The conversation actions were switched on and off by a script that read the page four times a
    second for as long as it was open (a phone's battery, a background tab). They follow the page's
    changes instead: the conversation list's selection and the chat's questions."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.add_init_script(_WATCH_TIMERS_JS)
    chat = ChatPage(context.new_page(), f"{url}/?__theme=light").open()
    chat.ask(QUESTION)
    chat.page.wait_for_function(
        "() => !document.querySelector('#rename-conversation').disabled", timeout=10_000
    )
    chat.new_conversation()
    chat.page.wait_for_function(
        "() => document.querySelector('#rename-conversation').disabled", timeout=10_000
    )
    assert [ms for ms in chat.page.evaluate("() => window.pageTimers") if ms < 1_000] == []
    context.close()
