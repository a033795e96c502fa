"""The quality judge: features, the drum classifier, distances to real kits and the report."""
