"""The data dir on disk. One module owns each format; every write is atomic."""
