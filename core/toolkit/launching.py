"""Running a realisation's launches (``(program, inputs, outputs, parameters)``, as
`metajit_backend_launch_sequence` receives them) one program call at a time.

Example::

    @hookimpl
    def metajit_backend_launch_sequence(launches, plan_key):
        run_each(launches)
"""


def run_each(launches):
    """Call each program in order; an exception reports how many finished
    (``metajit_completed``), so the executor keeps their outputs."""
    done = 0
    try:
        for program, inputs, outputs, parameters in launches:
            program(inputs, outputs, parameters)
            done += 1
    except BaseException as error:
        if not hasattr(error, "metajit_completed"):
            error.metajit_completed = done
        raise
