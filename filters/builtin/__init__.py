"""Built-in pre-filters, one module each; ``filters.prefilters.PREFILTERS`` puts them in order."""
