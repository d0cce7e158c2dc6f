"""Run stores: the RunStore protocol, the record changes every store applies, and the
in-memory and DynamoDB stores (the local stack adds SQLite)."""
