"""The host: ``durafn start`` serves HTTP functions, the management API and the workers."""
