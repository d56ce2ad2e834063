"""The browser chat of the product: a Gradio page over an already-built `rag.Assistant`.

- `ui.app`: `build_app(assistant) -> gradio.Blocks` and `launch(settings, paths=None, *, assistant=None)`
  (what `rag chat` runs); importing it imports gradio.
- `ui.render`: the HTML of answers, citations and sources, with everything from documents escaped.
- `python -m ui.screenshot`: regenerates the README screenshot (`ui/screenshot.png`).

Importing `ui` itself loads nothing heavy.
"""
