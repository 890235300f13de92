"""The live view's core: frame sources, the square that follows the hand and the steady count. Knows no store."""
