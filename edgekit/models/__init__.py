"""Models: cards (what a family is and can do), weight sources, preprocessing, opening a model."""
