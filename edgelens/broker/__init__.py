"""The broker's side of who may do what: MQTT accounts, the ACL, and reloading them."""
