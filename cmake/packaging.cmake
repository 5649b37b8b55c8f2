# cmake/packaging.cmake: install rules and CPack, included by the top
# CMakeLists.txt after the logsinkd target (its scope: CMAKE_SOURCE_DIR
# and CMAKE_BINARY_DIR are the project's, as they were there).
# "cmake --install" puts the daemon, its systemd units, the default config,
# the schema files and the manual pages in place.  The Debian package is
# built by packaging/build-deb.sh (CPack DEB): it configures with
# -DCMAKE_INSTALL_PREFIX=/usr -DLOGSINK_PACKAGE_DEB=ON.
include(GNUInstallDirs)
option(LOGSINK_PACKAGE_DEB "Install the Debian docs and set up CPack DEB" OFF)
if(CMAKE_INSTALL_PREFIX STREQUAL "/usr")
	set(LOGSINK_SYSTEMD_UNITDIR_DEFAULT /lib/systemd/system)
else()
	set(LOGSINK_SYSTEMD_UNITDIR_DEFAULT lib/systemd/system)
endif()
set(LOGSINK_SYSTEMD_UNITDIR "${LOGSINK_SYSTEMD_UNITDIR_DEFAULT}" CACHE STRING
	"systemd system unit directory (a relative one is under the prefix)")

install(TARGETS logsinkd RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})

# The units name /usr/bin and /etc; other prefixes get their own paths.
foreach(unit logsinkd.service logsinkd.socket logsinkd-udp.socket)
	set(src ${CMAKE_SOURCE_DIR}/systemd/${unit})
	set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${src})
	file(READ ${src} text)
	string(REPLACE "/usr/bin/logsinkd" "${CMAKE_INSTALL_FULL_BINDIR}/logsinkd"
		text "${text}")
	string(REPLACE "/etc/logsinkd/"
		"${CMAKE_INSTALL_FULL_SYSCONFDIR}/logsinkd/" text "${text}")
	file(GENERATE OUTPUT ${CMAKE_BINARY_DIR}/systemd/${unit} CONTENT "${text}")
	install(FILES ${CMAKE_BINARY_DIR}/systemd/${unit}
		DESTINATION ${LOGSINK_SYSTEMD_UNITDIR})
endforeach()

install(FILES ${CMAKE_SOURCE_DIR}/packaging/logsinkd.conf
	DESTINATION ${CMAKE_INSTALL_FULL_SYSCONFDIR}/logsinkd)

file(GLOB LOGSINK_SQL_INSTALL CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/sql/*.sql)
install(FILES ${LOGSINK_SQL_INSTALL}
	DESTINATION ${CMAKE_INSTALL_DATADIR}/logsink/sql)

# Manual pages and the Debian changelog, compressed reproducibly (gzip -n).
set(LOGSINK_GZ_OUTPUTS)
foreach(spec "docs/man/logsinkd.8:man/man8/logsinkd.8"
		"docs/man/logsinkd.conf.5:man/man5/logsinkd.conf.5"
		"packaging/changelog:doc/changelog.Debian")
	string(REPLACE ":" ";" spec "${spec}")
	list(GET spec 0 src)
	list(GET spec 1 dst)
	set(out ${CMAKE_BINARY_DIR}/packaging/${dst})
	add_custom_command(OUTPUT ${out}.gz
		COMMAND ${CMAKE_COMMAND} -E copy ${CMAKE_SOURCE_DIR}/${src} ${out}
		COMMAND gzip -9 -n -f ${out}
		DEPENDS ${CMAKE_SOURCE_DIR}/${src} VERBATIM)
	list(APPEND LOGSINK_GZ_OUTPUTS ${out}.gz)
endforeach()
add_custom_target(logsink_docs ALL DEPENDS ${LOGSINK_GZ_OUTPUTS})
install(FILES ${CMAKE_BINARY_DIR}/packaging/man/man8/logsinkd.8.gz
	DESTINATION ${CMAKE_INSTALL_MANDIR}/man8)
install(FILES ${CMAKE_BINARY_DIR}/packaging/man/man5/logsinkd.conf.5.gz
	DESTINATION ${CMAKE_INSTALL_MANDIR}/man5)

if(LOGSINK_PACKAGE_DEB)
	if(NOT CMAKE_INSTALL_PREFIX STREQUAL "/usr")
		message(FATAL_ERROR "LOGSINK_PACKAGE_DEB needs -DCMAKE_INSTALL_PREFIX=/usr")
	endif()
	install(FILES ${CMAKE_SOURCE_DIR}/packaging/copyright
		${CMAKE_BINARY_DIR}/packaging/doc/changelog.Debian.gz
		DESTINATION ${CMAKE_INSTALL_DATADIR}/doc/logsink)

	# The Debian revision comes from the top entry of packaging/changelog,
	# whose upstream part must be the project version.
	file(STRINGS ${CMAKE_SOURCE_DIR}/packaging/changelog top LIMIT_COUNT 1)
	if(NOT top MATCHES "^logsink \\(([^)-]+)-([^)]+)\\)")
		message(FATAL_ERROR "packaging/changelog: bad first line: ${top}")
	endif()
	if(NOT CMAKE_MATCH_1 STREQUAL PROJECT_VERSION)
		message(FATAL_ERROR "packaging/changelog is at ${CMAKE_MATCH_1}, "
			"the project at ${PROJECT_VERSION}: add a changelog entry")
	endif()
	set(CPACK_DEBIAN_PACKAGE_RELEASE ${CMAKE_MATCH_2})

	# cpack builds only what it installs (build-deb.sh builds that).
	set(CMAKE_SKIP_INSTALL_ALL_DEPENDENCY ON)
	set(CPACK_GENERATOR DEB)
	set(CPACK_PACKAGE_NAME logsink)
	set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
	set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
	set(CPACK_STRIP_FILES ON)
	# As dh_strip: no compiler banners or .note section in the binary.
	install(CODE "execute_process(COMMAND strip --remove-section=.comment
		--remove-section=.note
		\"\$ENV{DESTDIR}\${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_BINDIR}/logsinkd\"
		COMMAND_ERROR_IS_FATAL ANY)")
	set(CPACK_PACKAGE_CONTACT
		"logsink maintainers <maintainers@users.noreply.h-seed-18086361.example>")
	set(CPACK_PACKAGE_DESCRIPTION_SUMMARY
		"TCP log collector storing log lines in PostgreSQL")
	# CPack puts the summary above this as the synopsis line.
	set(CPACK_DEBIAN_PACKAGE_DESCRIPTION
		"logsinkd accepts TCP connections and UDP syslog datagrams from log
senders (netcat, logger, rsyslog or syslog-ng forwarders, network devices,
logging libraries) and stores every line
as a row of a PostgreSQL table, written with COPY through a small pool of
asynchronous libpq connections.
.
A full queue stops reading from the senders (TCP back-pressure) instead of
dropping lines, and database outages are survived by retrying. Syslog
(RFC 5424, RFC 3164) and JSON lines are parsed into their own columns.
.
The package ships a sandboxed systemd service, optional socket units for
TCP and UDP port 514, and a default configuration in /etc/logsinkd.")
	set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
	set(CPACK_DEBIAN_PACKAGE_SECTION admin)
	set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
	set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
	set(CPACK_DEBIAN_PACKAGE_DEPENDS "adduser, zlib1g")
	set(CPACK_DEBIAN_PACKAGE_SUGGESTS "postgresql")
	set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
		${CMAKE_SOURCE_DIR}/packaging/deb/conffiles
		${CMAKE_SOURCE_DIR}/packaging/deb/postinst
		${CMAKE_SOURCE_DIR}/packaging/deb/prerm
		${CMAKE_SOURCE_DIR}/packaging/deb/postrm)
	set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
	include(CPack)
endif()
