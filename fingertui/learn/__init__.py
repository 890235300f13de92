"""The model: hand pose, finger states, the image backbone, features, heads, pooling the experts and metrics. Knows no runs, flags or UI."""
