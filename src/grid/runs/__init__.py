"""Runs and sessions (L4, beside the server): scripts and JupyterLab with datastore versions
mounted at /datastores/<name>/<version> for them alone, on this machine or through SLURM."""
