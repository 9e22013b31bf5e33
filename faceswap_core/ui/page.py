"""Page-wide CSS and script that no single tab owns: the before/after view, leftover error badges, and a
warning before leaving a page with work on it.
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
"""

# Back, Forward, reload or closing the tab would lose the photo, its mask and the result: ask first.
HEAD = """
<script>
window.addEventListener("beforeunload", (event) => {
  const work = document.querySelector("#result img, #crops img, #download:not(.hidden)")
    || /face(s)? found/.test(document.querySelector("#mask-note")?.textContent || "");
  if (work) { event.preventDefault(); event.returnValue = ""; }
});
</script>
"""
