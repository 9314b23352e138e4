"""Rich renderables for procmap's views.  Only the command layer imports this package."""
