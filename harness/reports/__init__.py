"""Reports: coverage, merge of shards, HTML, record formatting."""
