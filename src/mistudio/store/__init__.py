"""The feature store: one folder of arrays per extraction, written by the engine and read by the dashboards."""
