"""vector → match: nearest catalog items for a query vector, with filters applied inside."""
