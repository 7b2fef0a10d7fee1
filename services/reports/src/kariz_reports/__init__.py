"""Reports: a read model of Kariz's public events, per day and dimension."""
