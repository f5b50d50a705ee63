"""Running test work in several threads at once (independent graphs must work)."""
import threading


def run_in_threads(work, count):
    """``[work(0), ..., work(count - 1)]``, each called in its own thread, all started
    together; the first exception any of them raised is raised here."""
    results, errors = [None] * count, []

    def run(index):
        try:
            results[index] = work(index)
        except BaseException as error:  # re-raised in the test's thread below
            errors.append(error)
    threads = [threading.Thread(target=run, args=(k,)) for k in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return results
