"""storaged: storage-node daemons for OpenStack-style object storage."""
