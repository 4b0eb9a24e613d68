package api

// SetReaderCache turns the cache of opened recordings on or off, so that
// benchmarks can measure the cold path (every request opens the
// recording).
func SetReaderCache(on bool) { readerCacheOff.Store(!on) }
