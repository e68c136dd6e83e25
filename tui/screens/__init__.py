"""The dashboard's screens: the live overview and the details of one run."""
