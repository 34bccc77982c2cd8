"""Flask blueprints, one per transaction."""
