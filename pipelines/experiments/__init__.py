"""Online experiment analysis: statistics on per-variant aggregates (`stats`, pure numpy / scipy,
also used by the model server's bandit), the Spark transforms that produce those aggregates
(`analyze`, imported on its own so the server does not need Spark), one look at an experiment
(`stage`: results table, decision rule, alias move; `report`: its HTML page), the bandit's
reweighting (`bandit`) and the simulation that checks the statistics (`simulate`).
See docs/experiments.md."""
