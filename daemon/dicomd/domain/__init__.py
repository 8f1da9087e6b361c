"""What a stored thing is and what may be done to it: resources and their JSON views,
metadata, attachments, the change log, revisions and the names of metadata and attachment
types. Built on the index and the store; knows nothing of HTTP, scripts or the network."""
