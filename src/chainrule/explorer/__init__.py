"""The explorer: chainrule's own engine in the browser, run by ``chainrule explore``.

A static page (``static/``) loads chainrule's source into Pyodide (CPython compiled to
WebAssembly) inside a Web Worker and calls :mod:`chainrule.explorer.session`: the
expression view draws a graph with :func:`chainrule.graph.draw_dot` (laid out by
Graphviz compiled to WebAssembly) and steps through the backward pass; the training
view trains an MLP and draws what it learns. :mod:`chainrule.explorer.server` serves
the page on 127.0.0.1 or writes it out as a static site.

Importing this package imports nothing else: the session module runs in the browser,
the server on this machine.
"""
