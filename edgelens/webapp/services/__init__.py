"""What the routes call: keyword-only functions over Redis and the catalog."""
