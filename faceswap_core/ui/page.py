"""Page-wide CSS and script that no single tab owns: the before/after view, leftover error badges, words for
the symbol-only buttons, and a warning before leaving a page with work on it.
"""

from __future__ import annotations

CSS = """
/* before/after: both images fill the same box, whole (letterboxed), so they line up at any aspect ratio */
#result .slider-wrap .content { height: 100%; }
#result .slider-wrap .content img {
  width: 100% !important; height: 100% !important; max-height: 100% !important; object-fit: contain;
}
#result .slider-wrap .content img.fixed { top: 0 !important; left: 0 !important; }
/* the pop-up says what went wrong; a bare red "Error" left on a component after it fades says nothing */
[data-testid="status-tracker"]:has(> .error) { display: none !important; }
/* the Train tab's crops: every row whole, file names under the crops, not over their chins */
#crops .grid-container {
  grid-template-columns: repeat(auto-fill, minmax(100px, 1fr)) !important;
  grid-template-rows: none !important; grid-auto-rows: auto !important;
}
#crops .thumbnail-item {
  aspect-ratio: auto !important; height: auto !important; overflow: visible !important;
  display: flex; flex-direction: column;
}
#crops .thumbnail-item img { aspect-ratio: 1; width: 100% !important; height: auto !important; flex: none; }
#crops .caption-label { position: static; max-width: 100%; margin: 2px 0 0; transform: none; }
/* Gradio gives a gallery of height "auto" a 450 px floor (320 px on a phone): no empty box under 1-2 crops */
#crops .grid-wrap.fixed-height { min-height: 0; }
/* a gallery's heading above the thumbnails, not over the first one (Try strengths' wraps on a phone) */
:is(#candidates, #crops) > label[data-testid="block-label"] { position: static; margin-bottom: 4px; }
/* the captions table takes typing, not files: no "Drop CSV or TSV files here to import data into dataframe" */
#captions .drop-hint { display: none !important; }
"""

# Back, Forward, reload or closing the tab would lose the photo, its mask and the result: ask first.
# Buttons that show a symbol only get their words as a tooltip and for screen readers (Gradio's Button has
# neither parameter): set once each is on the page.
HEAD = """
<script>
const SYMBOL_BUTTONS = {
  "#lora-refresh": "Refresh the list of people (after adding or training one in another tab)",
  "#dice": "A new random seed",
};
new MutationObserver(() => {
  for (const [selector, words] of Object.entries(SYMBOL_BUTTONS)) {
    const button = document.querySelector(selector);
    if (button && button.title !== words) { button.title = words; button.setAttribute("aria-label", words); }
  }
}).observe(document.documentElement, {childList: true, subtree: true});
window.addEventListener("beforeunload", (event) => {
  const work = document.querySelector("#result img, #crops img, #download:not(.hidden)")
    || /face(s)? found/.test(document.querySelector("#mask-note")?.textContent || "");
  if (work) { event.preventDefault(); event.returnValue = ""; }
});
</script>
"""
