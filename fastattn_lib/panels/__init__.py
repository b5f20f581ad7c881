"""One module per notebook: pure `update` functions the tests call, the figures drawn from their data,
and the widgets that tie controls to both. Shared plumbing lives in `panels.common`."""
