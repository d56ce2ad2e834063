"""Helpers of the browser tests: chat servers on free ports and a page object for the chat page.

(A plain module, not a conftest, so test modules can import it; its name is unique under tests/.)
"""

from __future__ import annotations

import re
import shutil
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ui.screenshot import CHROMIUM as SCREENSHOT_CHROMIUM
from ui.screenshot import offline_settings as lexical_settings  # noqa: F401 - for the test modules

# The same browser and flags as `python -m ui.screenshot` (see DEVELOPERS.md for why these flags).
CHROMIUM = Path(SCREENSHOT_CHROMIUM)
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
ANSWER_TIMEOUT_MS = 60_000


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def serve_app(assistant: Any, conversations: Any = None) -> Iterator[str]:
    """Serve the chat page over `assistant` on 127.0.0.1:<free port> in this process; yield its URL.
    With a `ConversationStore`, the page lists conversations and has the thumbs under answers."""
    from ui.app import build_app, serve

    demo = build_app(assistant, conversations=conversations)
    url = serve(demo, "127.0.0.1", free_port(), block=False, quiet=True)
    try:
        yield url.rstrip("/")
    finally:
        demo.close()


class ChatPage:
    """What a person does on the chat page, and what they see."""

    def __init__(self, page: Any, url: str) -> None:
        self.page = page
        self.url = url
        self.console: list[str] = []
        self.dialogs: list[str] = []
        self.external_requests: list[str] = []
        page.on("console", lambda message: self.console.append(message.text))
        page.on("dialog", self._on_dialog)
        page.on("request", self._on_request)

    def _on_dialog(self, dialog: Any) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def _on_request(self, request: Any) -> None:
        if not re.match(r"^(https?|wss?)://(127\.0\.0\.1|localhost)(:\d+)?/", request.url) and not (
            request.url.startswith(("data:", "blob:"))
        ):
            self.external_requests.append(request.url)

    def open(self) -> ChatPage:
        self.page.goto(self.url)
        self.page.wait_for_selector("#question textarea")
        return self

    def answers(self) -> Any:
        return self.page.locator("#chat .answer:not(.answer-streaming)")

    def questions(self) -> list[str]:
        return [text.strip() for text in self.page.locator("#chat .question").all_inner_texts()]

    def submit(self, question: str) -> int:
        """Type and send a question; return how many answers were complete before it."""
        before = self.answers().count()
        self.page.fill("#question textarea", question)
        self.page.press("#question textarea", "Enter")
        return before

    def wait_for_answer(self, before: int) -> Any:
        """Wait until answer number `before + 1` is complete (final or error) and return it."""
        self.page.wait_for_function(
            "n => document.querySelectorAll('#chat .answer:not(.answer-streaming)').length > n",
            arg=before,
            timeout=ANSWER_TIMEOUT_MS,
        )
        return self.answers().last

    def ask(self, question: str) -> Any:
        """Ask and wait until the answer is complete; return it."""
        return self.wait_for_answer(self.submit(question))

    def new_conversation(self) -> None:
        """Start afresh and wait until the old messages are gone (else the next answer count is off)."""
        self.page.click("#new-conversation")
        self.page.wait_for_function("() => !document.querySelector('#chat .question')")

    def choose(self, elem_id: str, option: str) -> None:
        """Pick `option` in a Gradio dropdown."""
        self.page.click(f"#{elem_id} input")
        self.page.click(f'#{elem_id} li[role=option][aria-label="{option}"]')
        self.page.wait_for_function(
            "([id, value]) => document.querySelector(`#${id} input`).value === value", arg=[elem_id, option]
        )

    def screenshot(self, name: str) -> Path:
        ARTIFACTS.mkdir(exist_ok=True)
        path = ARTIFACTS / name
        self.page.screenshot(path=str(path), full_page=False)
        return path


def copy_seeds(seeds_dir: Path, destination: Path) -> Path:
    target = destination / "seeds"
    shutil.copytree(seeds_dir, target)
    for path in target.iterdir():
        path.chmod(0o644)  # the originals are read-only; the index may not care, the cleanup does
    return target


# WCAG 2.x contrast of every visible text in the page, computed by the browser from the computed styles:
# the text colour (with its alpha and the opacity of its ancestors) over the backgrounds stacked behind it.
# Returns the texts below the AA threshold (4.5:1; 3:1 for large text: >= 24px, or >= 18.66px bold).
# Colour helpers of the page-side checks below: any CSS colour -> [r, g, b, a] via a canvas (handles
# color(), oklch...), alpha compositing, and the WCAG contrast ratio.
_COLOUR_JS = """
  const canvas = document.createElement('canvas'); canvas.width = canvas.height = 1;
  const ctx = canvas.getContext('2d', {willReadFrequently: true});
  const rgba = (css) => {
    ctx.clearRect(0, 0, 1, 1); ctx.fillStyle = '#000'; ctx.fillStyle = css; ctx.fillRect(0, 0, 1, 1);
    const [r, g, b, a] = ctx.getImageData(0, 0, 1, 1).data; return [r, g, b, a / 255];
  };
  const over = (top, bottom) => [0, 1, 2].map(i => top[i] * top[3] + bottom[i] * (1 - top[3])).concat([1]);
  const luminance = (c) => {
    const [r, g, b] = c.slice(0, 3).map(v => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; });
    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
  };
  const ratio = (a, b) => { const [x, y] = [luminance(a), luminance(b)].sort((p, q) => q - p); return (x + 0.05) / (y + 0.05); };
"""

_CONTRAST_JS = (
    """
(root) => {"""
    + _COLOUR_JS
    + """  const backdrop = (el) => {  // the opaque colour behind el: its own and its ancestors' backgrounds, composited
    const layers = [];
    for (let node = el; node && node.nodeType === 1; node = node.parentElement) {
      const style = getComputedStyle(node);
      if (style.backgroundImage !== 'none' && style.backgroundImage.includes('gradient')) return null;
      const colour = rgba(style.backgroundColor);
      if (colour[3] > 0) { layers.push(colour); if (colour[3] >= 1) break; }
    }
    let result = rgba(getComputedStyle(document.body).backgroundColor);
    if (result[3] < 1) result = over(result, [255, 255, 255, 1]);
    for (const layer of layers.reverse()) result = over(layer, result);
    return result;
  };
  const failures = [];
  const scope = document.querySelector(root) || document.body;
  const walker = document.createTreeWalker(scope, NodeFilter.SHOW_TEXT);
  const seen = new Set();
  for (let text = walker.nextNode(); text; text = walker.nextNode()) {
    const el = text.parentElement;
    if (!el || seen.has(el) || !text.textContent.trim()) continue;
    seen.add(el);
    const style = getComputedStyle(el);
    const box = el.getBoundingClientRect();
    if (box.width < 2 || box.height < 2 || style.visibility !== 'visible' || el.closest('[aria-hidden=true], .sr-only, .hide, [hidden]')) continue;
    if (el.closest('button:disabled, [aria-disabled=true]')) continue;  // inactive controls are exempt
    let opacity = 1;
    for (let node = el; node && node.nodeType === 1; node = node.parentElement) opacity *= parseFloat(getComputedStyle(node).opacity);
    if (opacity < 0.05) continue;
    const back = backdrop(el);
    if (!back) continue;
    const fg = rgba(style.color); fg[3] *= opacity;
    const value = ratio(over(fg, back), back);
    const size = parseFloat(style.fontSize), bold = parseInt(style.fontWeight, 10) >= 700;
    const needed = size >= 24 || (bold && size >= 18.66) ? 3 : 4.5;
    if (value < needed) failures.push({text: text.textContent.trim().slice(0, 40), element: el.tagName.toLowerCase() + (el.className && typeof el.className === 'string' ? '.' + el.className.trim().split(/\\s+/).join('.') : ''), ratio: Math.round(value * 100) / 100, needed, color: style.color});
  }
  return failures;
}
"""
)


def contrast_failures(page: Any, root: str = "body") -> list[dict]:
    """Texts under `root` whose contrast is below WCAG AA, as computed in the page (see _CONTRAST_JS)."""
    return page.evaluate(_CONTRAST_JS, root)


def contrast_ratio(page: Any, foreground: str, background: str) -> float:
    """WCAG contrast between two CSS colours, computed by the page."""
    return page.evaluate(
        "([a, b]) => {" + _COLOUR_JS + "return ratio(rgba(a), rgba(b)); }",
        [foreground, background],
    )


# Run in the page before Gradio starts (context.add_init_script): on every animation frame from the first
# paint, the distance between the subtitle's bottom and the offline banner's top, so a band that shows
# until the load events collapse it (a flash of layout) is caught as surely as one that stays; and the
# subtitle's size with the banner's top (`headerBoxes`), so a re-wrap or a move after load is caught too.
WATCH_HEADER_JS = """
(() => {
  window.headerGaps = [];
  window.headerBoxes = [];
  const tick = () => {
    // (The subtitle, or the title on a phone, where the subtitle is not shown.)
    let subtitle = document.querySelector('.app-subtitle');
    if (subtitle && !subtitle.getBoundingClientRect().height) subtitle = document.querySelector('.app-title');
    const banner = document.querySelector('#mode-banner .banner');
    if (subtitle && banner && banner.getBoundingClientRect().height > 0) {
      const text = subtitle.getBoundingClientRect(), top = banner.getBoundingClientRect().top;
      window.headerGaps.push(Math.round(top - text.bottom));
      window.headerBoxes.push([Math.round(text.width), Math.round(text.height), Math.round(top)].join(' '));
    }
    if (window.headerGaps.length < 600) requestAnimationFrame(tick);
  };
  requestAnimationFrame(tick);
})();
"""


def header_layout(page: Any) -> dict:
    """Where the header's parts are: the boxes (left, top, right, bottom) of the title, the subtitle, the
    account line (None when not shown), the banner, the chat column and the side column."""
    return page.evaluate(
        """() => {
            const box = (el) => { if (!el) return null; const r = el.getBoundingClientRect();
                return r.width > 0 && r.height > 0 ? {left: r.left, top: r.top, right: r.right, bottom: r.bottom} : null; };
            return {title: box(document.querySelector('.app-title')), subtitle: box(document.querySelector('.app-subtitle')),
                    account: box(document.querySelector('#account')), banner: box(document.querySelector('#mode-banner .banner')),
                    chat: box(document.querySelector('#chat').closest('.column')), side: box(document.querySelector('.side')),
                    gaps: window.headerGaps || []};
        }"""
    )


# WCAG 1.4.11 (non-text contrast): a control's boundary, its border or its fill, against what is behind it.
# From the element up to three ancestors (Gradio draws a dropdown's box on a wrapper), the best ratio.
_BOUNDARY_JS = (
    """
(selector) => {"""
    + _COLOUR_JS
    + """  const behind = (el) => {  // the opaque colour under el (its ancestors' backgrounds, composited)
    const layers = [];
    for (let node = el; node && node.nodeType === 1; node = node.parentElement) {
      const colour = rgba(getComputedStyle(node).backgroundColor);
      if (colour[3] > 0) { layers.push(colour); if (colour[3] >= 1) break; }
    }
    let result = [255, 255, 255, 1];
    for (const layer of layers.reverse()) result = over(layer, result);
    return result;
  };
  const el = document.querySelector(selector);
  if (!el) return null;
  let best = 0;
  for (let node = el, i = 0; node && i < 4; node = node.parentElement, i++) {
    const style = getComputedStyle(node), back = behind(node.parentElement);
    if (parseFloat(style.borderTopWidth) >= 1 && style.borderTopStyle !== 'none')
      best = Math.max(best, ratio(over(rgba(style.borderTopColor), back), back));
    const fill = rgba(style.backgroundColor);
    if (fill[3] > 0) best = Math.max(best, ratio(over(fill, back), back));
  }
  return Math.round(best * 100) / 100;
}
"""
)


def control_boundary(page: Any, selector: str) -> float | None:
    """The contrast of the control at `selector` against what is behind it (see _BOUNDARY_JS)."""
    return page.evaluate(_BOUNDARY_JS, selector)
