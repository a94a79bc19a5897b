"""The job's life, whatever the store: claims, outcomes, leases, keys,
slots and the transaction its writes join."""
