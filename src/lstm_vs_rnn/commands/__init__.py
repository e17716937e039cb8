"""The commands behind `make` targets that are not pipeline stages: the MLflow UI, the team
server and its teammates, the experiment table and the lag sweep."""
