"""Model weights: installed from package registries, verified and arranged by
``stella models prepare``; found at run time through :mod:`.catalog`."""
