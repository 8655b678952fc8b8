"""The live service: an HTTP JSON API over a built artifact, with a durable event store."""
