"""Shared helpers at the bottom of the import graph: no imports from the portal's apps."""
