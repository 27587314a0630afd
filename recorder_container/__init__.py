"""The recording robot: one process per task (a Fargate task in AWS, a subprocess locally)."""
