"""The study engine behind `qgfd-study`: a study file read and checked (plan), its runs trained and evaluated
(runs, engine, jobs), their rows kept (table), and the report written (report, plots, cost, notes, status)."""
