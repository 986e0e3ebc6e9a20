"""What the runtime adapters share; the sans-IO core never imports it."""
