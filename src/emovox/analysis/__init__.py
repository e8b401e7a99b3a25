"""Looking inside learned representations: t-SNE maps and units that track loudness."""
