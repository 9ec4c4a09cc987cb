//! Squid log format engine (being built): compiles a logformat into a parser.
