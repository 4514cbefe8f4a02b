"""Plain-ML layer of preflab: tiny base models, DPO training and sampling, free of Django."""
