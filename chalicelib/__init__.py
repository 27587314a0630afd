"""cloudrec's domain: shared by the Chalice app (app.py) and the recorder container."""
