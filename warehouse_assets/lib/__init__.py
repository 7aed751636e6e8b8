"""Pure-Python core of the warehouse: exchange clients, warehouse access, records. Never imports Dagster."""
