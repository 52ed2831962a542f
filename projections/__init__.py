"""Read models: each module holds its tables, the event handlers folding events into them,
and the query methods the interfaces call. Projections decide nothing; they only fold."""
