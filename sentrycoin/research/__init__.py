"""The second use of the product: recording markets and studying them offline.

`record` (and `run --record`) writes recordings (`recording`: the format), `replay` feeds
them (or other readable files, `readers`) through the live pipeline's feed handlers,
books and detectors, and `backtest` scores the alerts against crash windows (`labels`,
`signals`) beside chance, with `results`, `report` and `charts` for its output.
`commands` puts record, replay and backtest on the command line.
"""
