//! Tailer (being built): follows log files through rotation.
