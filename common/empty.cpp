// Placeholder translation unit for a library whose module has no sources yet.
