//! SIGINT and SIGTERM: the first cancels the run (which removes its temporary
//! files before it returns), a second one during the clean-up exits at once.

use tokio::sync::watch;

/// Exit status after SIGINT (128 + 2), as shells report it.
pub(crate) const SIGINT_STATUS: i32 = 130;
/// Exit status after SIGTERM (128 + 15).
#[cfg(unix)]
pub(crate) const SIGTERM_STATUS: i32 = 143;

/// Watches for SIGINT and SIGTERM from the moment it is installed.
pub(crate) struct Interrupt {
    /// The exit status of the first signal received, once one was.
    received: watch::Receiver<Option<i32>>,
}

impl Interrupt {
    /// Installs the handlers (from now on the signals no longer kill the
    /// process) and watches for them on a task of its own.
    #[cfg(unix)]
    pub(crate) fn install() -> std::io::Result<Interrupt> {
        use tokio::signal::unix::{SignalKind, signal};
        let mut int = signal(SignalKind::interrupt())?;
        let mut term = signal(SignalKind::terminate())?;
        let (tx, received) = watch::channel(None);
        tokio::spawn(async move {
            let next = async |int: &mut tokio::signal::unix::Signal,
                              term: &mut tokio::signal::unix::Signal| {
                tokio::select! {
                    _ = int.recv() => SIGINT_STATUS,
                    _ = term.recv() => SIGTERM_STATUS,
                }
            };
            let status = next(&mut int, &mut term).await;
            super::say(format_args!(
                "interrupted: cancelling, removing temporary files (Ctrl-C again to exit at once)"
            ));
            let _ = tx.send(Some(status));
            let status = next(&mut int, &mut term).await;
            super::say(format_args!("interrupted again: exiting at once"));
            std::process::exit(status);
        });
        Ok(Interrupt { received })
    }

    /// As on Unix, for Ctrl-C only.
    #[cfg(not(unix))]
    pub(crate) fn install() -> std::io::Result<Interrupt> {
        let (tx, received) = watch::channel(None);
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_err() {
                return std::future::pending().await;
            }
            super::say(format_args!(
                "interrupted: cancelling, removing temporary files (Ctrl-C again to exit at once)"
            ));
            let _ = tx.send(Some(SIGINT_STATUS));
            if tokio::signal::ctrl_c().await.is_ok() {
                std::process::exit(SIGINT_STATUS);
            }
        });
        Ok(Interrupt { received })
    }

    /// Completes when the first signal has been received.
    pub(crate) fn stopped(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut received = self.received.clone();
        async move {
            if received.wait_for(Option::is_some).await.is_err() {
                // The watcher is gone (it never is): never stop.
                std::future::pending::<()>().await;
            }
        }
    }

    /// The exit status of the signal received, if one was.
    pub(crate) fn received(&self) -> Option<i32> {
        *self.received.borrow()
    }
}
