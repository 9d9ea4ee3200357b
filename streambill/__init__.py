"""streambill edges: SDK, Avro codec, settings, topic admin, local services, CLI."""
