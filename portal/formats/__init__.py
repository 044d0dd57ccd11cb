"""Date formats per language (FORMAT_MODULE_PATH): one date format and one date-time format each, so a
page never mixes "12/04/2026" with "Dec. 4, 2026". Templates may ask for either the long or the short
name; both give the same text."""
