"""The console's views; each `render(data, reviewer)` draws one page."""
