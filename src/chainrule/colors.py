"""The colour of each class, the same in every picture chainrule draws.

The plots (:mod:`chainrule.plots`), the notebooks and the explorer's training view all
take their class colours from :data:`CLASS_COLORS`, so class 1 is the same orange
everywhere. Standard library only, so that the explorer can use it in the browser.
"""

from __future__ import annotations

__all__ = ["CLASS_COLORS"]

#: The colour of each class, in this order: Okabe and Ito's palette, whose colours
#: stay apart also for the common colour-vision deficiencies (blue, orange, green,
#: pink, sky blue, vermillion, yellow, black).
CLASS_COLORS: tuple[str, ...] = (
    "#0072B2",
    "#E69F00",
    "#009E73",
    "#CC79A7",
    "#56B4E9",
    "#D55E00",
    "#F0E442",
    "#000000",
)
