"""HTTP in the programming model: request and response types, and management URLs."""
