"""The duty desk (值班值守): what a duty officer does by hand, beside what hydro does by itself.

``recipients`` and ``compose`` are pure (who gets a manual SMS, and the exact text each gets);
``manual`` reads what they need from the store and queues the send.
"""
