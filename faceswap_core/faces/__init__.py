"""Everything about faces that needs no diffusion model: detection, masks, alignment, identity.

Data flows one way: an image goes to :mod:`detect` (boxes and 68 landmarks), whose :class:`Face`
feeds :mod:`masks` (what to repaint), :mod:`align` (training crops) and :mod:`identity` (who it is).
"""

from faceswap_core.faces.detect import Face, detect_faces, find_face

__all__ = ["Face", "detect_faces", "find_face"]
